"""Cluster manifests under infra/k8s: offline checks (no cluster, no network)."""

from __future__ import annotations

from typing import Any

import yaml

from core.config import REPO_ROOT

K8S = REPO_ROOT / "infra" / "k8s"


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def test_k8s_manifests_are_well_formed() -> None:
    files = sorted([*K8S.glob("**/*.yaml"), *K8S.glob("**/*.yml")])
    assert files, f"no manifests under {K8S}"
    kinds: dict[str, dict[str, Any]] = {}
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert doc.get("apiVersion"), path.name
            assert doc.get("kind"), path.name
            assert (doc.get("metadata") or {}).get("name"), f"{path.name}: {doc['kind']} has no name"
            kinds[doc["kind"]] = doc
    ray = kinds["RayCluster"]["spec"]
    assert ray["rayVersion"] == pins()["ray"]
    assert ray["headGroupSpec"]["template"]["spec"]["containers"]
    gpu = [
        c["resources"]["limits"].get("nvidia.com/gpu")
        for group in ray["workerGroupSpecs"]
        for c in group["template"]["spec"]["containers"]
    ]
    assert 1 in gpu, "no Ray worker group requests nvidia.com/gpu: 1"
    app = kinds["SparkApplication"]["spec"]
    main = app["mainApplicationFile"].removeprefix("local:///opt/lmforge/")
    assert main == "jobs/spark/main.py" and (REPO_ROOT / main).is_file()
    assert app["arguments"] == ["quality", "--run-id", "example", "--profile", "cluster"]
    assert app["sparkVersion"] == pins()["pyspark"]
