"""Cluster manifests under infra/k8s and the Airflow Helm values under infra/helm: offline checks (no
cluster, no network, no helm binary).

Schema-validated, against the Kubernetes OpenAPI schemas shipped by the PyPI package
`kubernetes-validate` (strict: unknown fields are errors): the core objects (Namespace,
ServiceAccount, Role, RoleBinding, ConfigMap); the pod templates inside the CRDs (RayCluster head and
worker groups, the RayJob submitter: PodTemplateSpec); the core types embedded in the CRDs and in the
Helm values (env entries: EnvVar, envFrom: EnvFromSource, securityContext: SecurityContext,
resources: ResourceRequirements, volumes: Volume, volumeMounts: VolumeMount).
Structure-checked (no schema in any package registry): the CRDs themselves (RayCluster, RayJob,
SparkApplication) and the chart values (the official Airflow chart's values.schema.json is not
published to a registry): required fields, types, and names that must match the deployment config
(namespace, service accounts, ConfigMap, Secrets, connection, pool, images, pins).
"""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from core.config import REPO_ROOT, PipelineConfig, load_config
from orchestration import spark_operators as so
from orchestration.pools import pool_command

K8S = REPO_ROOT / "infra" / "k8s"
VALUES = REPO_ROOT / "infra" / "helm" / "airflow-values.yaml"
KUBERNETES = "1.30"  # the oldest Kubernetes these manifests target; its schemas are in the package
CORE_KINDS = {"Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"}
CRD_KINDS = {"RayCluster", "RayJob", "SparkApplication"}
NAMESPACE = "lmforge"
CREDENTIAL_KEYS = ("password", "pass", "secret", "token", "fernetkey", "apikey", "connection", "key")


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def docs() -> list[dict[str, Any]]:
    files = sorted([*K8S.glob("**/*.yaml"), *K8S.glob("**/*.yml")])
    assert files, f"no manifests under {K8S}"
    return [d for path in files for d in yaml.safe_load_all(path.read_text()) if d is not None]


def one(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs() if d["kind"] == kind]
    return doc


def example_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> PipelineConfig:
    """The deployment config the manifests carry (ConfigMap `lmforge-config`), loaded as the pods do."""
    path = tmp_path / "config.json"
    path.write_text(one("ConfigMap")["data"]["config.json"])
    monkeypatch.setenv("LMFORGE_CONFIG", str(path))
    return load_config("cluster")


@cache
def _registry() -> tuple[Registry, str]:
    folder = (
        resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES}.0-local-strict"
    )
    definitions = json.loads((folder / "_definitions.json").read_text())
    return Registry().with_resource(definitions["$id"], Resource.from_contents(definitions)), definitions[
        "$id"
    ]


def check(instance: Any, definition: str) -> None:
    """Validate `instance` against one Kubernetes type (io.k8s.api.core.v1.*), strict."""
    registry, base = _registry()
    schema = {"$ref": f"{base}#/$defs/{definition}"}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(instance)


def test_the_schema_check_fails_on_bad_pod_templates() -> None:
    """The validator used below is strict and can fail: typos and wrong types are caught."""
    good = {"spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "1"}}}]}}
    check(good, "io.k8s.api.core.v1.PodTemplateSpec")
    for bad in (
        {"spec": {"containers": [{"name": "c", "imagePullPolicy": 3}]}},
        {"spec": {"containers": [{"name": "c", "resource": {}}]}},  # unknown field
        {"spec": {"containers": [{"image": "i"}]}},  # a container needs a name
        {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"secretRef": {}}}]}]}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            check(bad, "io.k8s.api.core.v1.PodTemplateSpec")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"nam": "x"}}, KUBERNETES, strict=True
        )


def test_k8s_manifests_are_well_formed() -> None:
    kinds: dict[str, int] = {}
    for doc in docs():
        assert doc.get("apiVersion") and doc.get("kind"), doc
        meta = doc.get("metadata") or {}
        assert meta.get("name"), f"{doc['kind']} has no name"
        if doc["kind"] != "Namespace":
            assert meta.get("namespace") == NAMESPACE, f"{doc['kind']} {meta['name']}"
        assert (meta.get("labels") or {}).get("app.kubernetes.io/part-of") == "lmforge", meta["name"]
        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    assert set(kinds) == CORE_KINDS | CRD_KINDS, kinds
    assert one("Namespace")["metadata"]["name"] == NAMESPACE


def test_core_objects_validate_against_the_kubernetes_schemas() -> None:
    """Schema-validated: every core object; the CRDs have no schema in the package (structure-checked)."""
    validated = set()
    for doc in docs():
        if doc["kind"] in CRD_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, KUBERNETES, strict=True)
            continue
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        validated.add(doc["kind"])
    assert validated == CORE_KINDS


def test_pod_templates_and_core_types_inside_the_crds_validate() -> None:
    """Schema-validated: RayCluster/RayJob pod templates (PodTemplateSpec), and the core types the
    SparkApplication and the Ray autoscaler embed."""
    ray = one("RayCluster")["spec"]
    templates = [ray["headGroupSpec"]["template"], *(g["template"] for g in ray["workerGroupSpecs"])]
    templates.append(one("RayJob")["spec"]["submitterPodTemplate"])
    for template in templates:
        check(template, "io.k8s.api.core.v1.PodTemplateSpec")
    auto = ray["autoscalerOptions"]
    for entry in auto["env"]:
        check(entry, "io.k8s.api.core.v1.EnvVar")
    check(auto["securityContext"], "io.k8s.api.core.v1.SecurityContext")
    check(auto["resources"], "io.k8s.api.core.v1.ResourceRequirements")
    spec = one("SparkApplication")["spec"]
    for role in ("driver", "executor"):
        pod = spec[role]
        for entry in pod["env"]:
            check(entry, "io.k8s.api.core.v1.EnvVar")
        for entry in pod["envFrom"]:
            check(entry, "io.k8s.api.core.v1.EnvFromSource")
        check(pod["securityContext"], "io.k8s.api.core.v1.SecurityContext")
        check({"labels": pod["labels"]}, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")


def test_ray_cluster_autoscales_cpu_and_gpu_groups(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Structure-checked: KubeRay RayCluster (ray.io/v1)."""
    doc = one("RayCluster")
    cfg = example_config(monkeypatch, tmp_path)
    assert doc["apiVersion"] == "ray.io/v1"
    ray = doc["spec"]
    assert ray["rayVersion"] == pins()["ray"]
    assert ray["enableInTreeAutoscaling"] is True
    auto = ray["autoscalerOptions"]
    assert auto["upscalingMode"] in {"Default", "Conservative", "Aggressive"}
    assert isinstance(auto["idleTimeoutSeconds"], int) and auto["idleTimeoutSeconds"] > 0
    head = ray["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # no training work on the head
    ports = {p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert ports["client"] == 10001 and ports["dashboard"] == 8265
    # ray.address names the head Service KubeRay creates: <cluster name>-head-svc, client port
    assert cfg.ray.address == f"ray://{doc['metadata']['name']}-head-svc:{ports['client']}"
    groups = {g["groupName"]: g for g in ray["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for name, group in groups.items():
        assert isinstance(group["rayStartParams"], dict), name
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], name
        for container in group["template"]["spec"]["containers"]:
            limits = container["resources"]["limits"]
            assert container["resources"]["requests"] == limits, name  # Guaranteed QoS
            assert ("nvidia.com/gpu" in limits) == (name == "gpu"), name
    for template in [head["template"], *(g["template"] for g in groups.values())]:  # the same config file
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        for container in template["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["LMFORGE_CONFIG"] == so.CONFIG_FILE and env["LMFORGE_PROFILE"] == "cluster"
            mounts = [m for m in container["volumeMounts"] if m["mountPath"] == so.CONFIG_DIR]
            assert [volumes[m["name"]]["configMap"]["name"] for m in mounts] == [so.CONFIG_MAP]
    gpu = groups["gpu"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu["tolerations"])
    # a pretraining job asks for ray.num_workers GPU workers: the group can grow to that many
    assert cfg.ray.use_gpu and groups["gpu"]["maxReplicas"] >= cfg.ray.num_workers


def test_ray_job_runs_the_pretrain_entrypoint(monkeypatch, tmp_path: Path) -> None:
    """Structure-checked: KubeRay RayJob; its entrypoint is the one `pretrain_job` submits."""
    import core.plans
    import core.storage
    from training.jobs_api import pretrain_job

    job = one("RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    cluster = one("RayCluster")["metadata"]["name"]
    assert spec["clusterSelector"] == {"ray.io/cluster": cluster}  # the long-lived cluster
    assert "rayClusterSpec" not in spec
    assert spec["submissionMode"] in {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
    env = {e["name"]: e for e in spec["submitterPodTemplate"]["spec"]["containers"][0]["env"]}
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "lmforge-ray-token",
        "key": "auth_token",
    }
    example_config(monkeypatch, tmp_path)
    plan = type("Plan", (), {"fingerprint": "f" * 64})()
    monkeypatch.setattr(core.plans, "plan_for", lambda *a, **k: plan)  # no storage to read here
    monkeypatch.setattr(core.storage, "open_storage", lambda *a, **k: None)
    _, _, entrypoint = pretrain_job("example", "cluster", "{}")
    assert spec["entrypoint"] == entrypoint
    module = shlex.split(entrypoint)[2]
    assert (REPO_ROOT / (module.replace(".", "/") + ".py")).is_file()


def test_spark_application_structure_and_rbac(monkeypatch, tmp_path: Path) -> None:
    """Structure-checked: SparkApplication (equal to what the DAG generates:
    tests/test_spark_operators.py), and the names the driver and Airflow RBAC share with the config."""
    cfg = example_config(monkeypatch, tmp_path)
    app = one("SparkApplication")
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    spec = app["spec"]
    assert spec["sparkVersion"] == pins()["pyspark"]
    main = spec["mainApplicationFile"].removeprefix("local:///opt/lmforge/")
    assert main == so.MAIN and (REPO_ROOT / main).is_file()
    assert spec["restartPolicy"] == {"type": "Never"}
    assert all(isinstance(a, str) for a in spec["arguments"])
    assert spec["arguments"][:3] == ["quality", "--run-id", "example"]
    k8s = cfg.spark.kubernetes
    assert cfg.spark.submit == "kubernetes" and cfg.storage.root.startswith("s3://")
    assert k8s.namespace == NAMESPACE and spec["image"] == k8s.image
    assert spec["driver"]["serviceAccount"] == k8s.service_account
    for role in ("driver", "executor"):
        assert spec[role]["configMaps"] == [{"name": so.CONFIG_MAP, "path": so.CONFIG_DIR}]
        assert spec[role]["envFrom"] == [
            {"secretRef": {"name": so.S3_SECRET}},
            {"secretRef": {"name": so.PII_SECRET}},
        ]
    assert one("ConfigMap")["metadata"]["name"] == so.CONFIG_MAP
    config_file = Path(so.CONFIG_FILE)  # the ConfigMap's key, as a file in the mounted folder
    assert config_file.name in one("ConfigMap")["data"] and str(config_file.parent) == so.CONFIG_DIR
    # the driver's account may start executors; Airflow's may create SparkApplications
    accounts = {d["metadata"]["name"] for d in docs() if d["kind"] == "ServiceAccount"}
    assert k8s.service_account in accounts
    roles = {d["metadata"]["name"]: d for d in docs() if d["kind"] == "Role"}
    bound = {}
    for binding in (d for d in docs() if d["kind"] == "RoleBinding"):
        assert binding["roleRef"]["name"] in roles
        for subject in binding["subjects"]:
            assert subject["namespace"] == NAMESPACE
            bound[subject["name"]] = roles[binding["roleRef"]["name"]]["rules"]

    def allows(account: str, group: str, resource: str, verb: str) -> bool:
        return any(
            group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
            for r in bound.get(account, [])
        )

    assert allows(k8s.service_account, "", "pods", "create") and allows(
        k8s.service_account, "", "services", "create"
    )
    worker = yaml.safe_load(VALUES.read_text())["workers"]["serviceAccount"]["name"]
    for verb in ("create", "get", "delete"):
        assert allows(worker, "sparkoperator.k8s.io", "sparkapplications", verb), verb
    assert allows(worker, "", "pods/log", "get") and allows(worker, "", "pods", "watch")


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in _walk(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [item for i, v in enumerate(node) for item in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


def test_helm_values_for_the_official_airflow_chart(monkeypatch, tmp_path: Path) -> None:
    """Structure-checked: the chart's values (executor, image, DAGs from the image, triggerer, the
    pool in the migration job, secrets by name only); schema-validated: the env entries, envFrom,
    volumes and volumeMounts the chart copies into every Airflow pod."""
    cfg = example_config(monkeypatch, tmp_path)
    values = yaml.safe_load(VALUES.read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert values["airflowVersion"] == pins()["apache-airflow"]
    image = values["images"]["airflow"]
    assert f"{image['repository']}:{image['tag']}" == cfg.spark.kubernetes.image  # one image for all
    assert (values["defaultAirflowRepository"], values["defaultAirflowTag"]) == (
        image["repository"],
        image["tag"],
    )
    # DAGs come from the image: nothing syncs or mounts another copy
    assert values["dags"]["persistence"]["enabled"] is False and values["dags"]["gitSync"]["enabled"] is False
    dags_folder = values["config"]["core"]["dags_folder"]
    assert f"COPY --chown=50000:0 dags {dags_folder}" in (REPO_ROOT / "infra/Dockerfile").read_text()
    assert values["triggerer"]["enabled"] is True and values["dagProcessor"]["enabled"] is True
    # env: the profile, the config file from the ConfigMap, the kubernetes connection
    for entry in values["env"]:
        check(entry, "io.k8s.api.core.v1.EnvVar")
    env = {e["name"]: e["value"] for e in values["env"]}
    assert not [n for n in env if re.search(r"PASSWORD|SECRET|_KEY|TOKEN|FERNET", n)], env  # Secrets only
    assert env["LMFORGE_PROFILE"] == "cluster" and env["LMFORGE_CONFIG"] == so.CONFIG_FILE
    conn = json.loads(env[f"AIRFLOW_CONN_{cfg.spark.kubernetes.conn_id.upper()}"])
    assert conn == {"conn_type": "kubernetes", "extra": {"in_cluster": True}}
    for volume in values["volumes"]:
        check(volume, "io.k8s.api.core.v1.Volume")
    for mount in values["volumeMounts"]:
        check(mount, "io.k8s.api.core.v1.VolumeMount")
    (volume,) = [v for v in values["volumes"] if v.get("configMap", {}).get("name") == so.CONFIG_MAP]
    (mount,) = [m for m in values["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == so.CONFIG_DIR
    env_from = yaml.safe_load(values["extraEnvFrom"])  # the chart takes it as a YAML string
    for entry in env_from:
        check(entry, "io.k8s.api.core.v1.EnvFromSource")
    assert {"secretRef": {"name": so.S3_SECRET}} in env_from
    assert {
        "envName": "RAY_AUTH_TOKEN",
        "secretName": "lmforge-ray-token",
        "secretKey": "auth_token",
    } in values["secret"]
    # the pool: `airflow pools set` after `airflow db migrate`, sized by the deployment config
    job = values["migrateDatabaseJob"]
    assert job["enabled"] is True
    assert job["args"][:2] == ["bash", "-c"]
    commands = [shlex.split(c) for c in job["args"][2].split("&&")]
    assert commands == [["airflow", "db", "migrate"], pool_command(cfg)]
    # secrets: by name only, never inline
    for name in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert isinstance(values[name], str) and values[name], name
    assert values["data"]["metadataSecretName"] and "metadataConnection" not in values["data"]
    for key in ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"):
        assert key not in values, key
    for path, value in _walk(values):
        leaf = path.rsplit(".", 1)[-1].lower()
        if leaf.endswith(CREDENTIAL_KEYS) and not leaf.endswith(("secretname", "secretkey")):
            pytest.fail(f"{path} = {value!r}: a credential inline, use a Secret")
