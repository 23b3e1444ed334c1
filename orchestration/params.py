"""Turn Airflow trigger params into a validated config and a run id (shared by the DAGs)."""

from __future__ import annotations

import json
import re
from typing import Any, get_args

from airflow.sdk import Param
from pydantic import BaseModel

from core.config import ConfigError, PipelineConfig, deep_merge, load_config
from core.datasets import check_run_id, require_manifest
from core.overrides import check_overrides
from core.storage import open_storage

# Param name -> config path. A param left at None / "" / [] keeps the profile's value. Every path
# here must be overridable (core/overrides.py); folders and files are location *names*.
PARAM_FIELDS = {
    "seeds": ("crawl", "seeds"),
    "allow_domains": ("crawl", "allow_domains"),
    "deny_domains": ("crawl", "deny_domains"),
    "max_pages": ("crawl", "max_pages"),
    "max_pages_per_host": ("crawl", "max_pages_per_host"),
    "max_depth": ("crawl", "max_depth"),
    "delay_s": ("crawl", "delay_s"),
    "sources": ("sources", "include"),
    "books": ("sources", "books"),
    "code": ("sources", "code"),
    "papers": ("sources", "papers"),
    "social": ("sources", "social"),
    "synthetic_count": ("sources", "synthetic_count"),
    "warc": ("warc", "use"),
    "repeated_lines": ("dedup", "repeated_lines"),
    "minhash_threshold": ("minhash", "threshold"),
    "protected_works": ("copyright", "protected_works"),
    "overlap_action": ("copyright", "overlap_action"),
    "optout_registry": ("copyright", "optout_registry"),
    "blocklist": ("copyright", "blocklist"),
    "pii_action": ("pii", "action"),
    "toxicity_model": ("toxicity", "model"),
    "toxicity_threshold": ("toxicity", "flag_threshold"),
    "evals": ("decontam", "evals"),
    "decontam_action": ("decontam", "action"),
    "max_domain_share": ("diversity", "max_domain_share"),
    # pretrain DAG
    "objective": ("train", "objective"),
    "mode": ("train", "mode"),
    "init_from": ("train", "init_location"),
    "model_size": ("train", "model_size"),
    "token_budget": ("train", "token_budget"),
    "steps": ("train", "steps"),
    "grad_accum": ("train", "grad_accum"),
    "parallelism": ("train", "parallelism"),
    "precision": ("train", "precision"),
    "workers": ("ray", "num_workers"),
    "use_gpu": ("ray", "use_gpu"),
}


def nullable(kind: str, description: str, **schema: Any) -> Param:
    """An optional param: empty (None) keeps the profile's value. Typed `[null, kind]`, because the
    trigger form marks a non-nullable param without a value as required and disables Trigger."""
    if "enum" in schema:  # a drop-down: its empty choice is labelled, not shown as "null"
        schema["enum"] = [None, *schema["enum"]]
        schema["values_display"] = {None: "(the profile's value)"}
    return Param(None, type=["null", kind], description=description, **schema)


def config_choices(section: str, field: str) -> list[str]:
    """The allowed values of a Literal config field, for a trigger form's drop-down (one source)."""
    section_model = PipelineConfig.model_fields[section].annotation
    assert isinstance(section_model, type) and issubclass(section_model, BaseModel)
    return [str(v) for v in get_args(section_model.model_fields[field].annotation)]


def params_to_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """The config overrides a trigger's params ask for, refused (ConfigError naming the field) when
    they touch a config-only field or carry a secret (core/overrides.py)."""
    overrides: dict[str, Any] = {}
    for name, (section, field) in PARAM_FIELDS.items():
        value = params.get(name)
        if value is False or value in (None, "", [], 0):
            continue
        overrides.setdefault(section, {})[field] = value
    extra = params.get("overrides") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    if not isinstance(extra, dict):
        raise ConfigError(f"param overrides: expected a JSON object, got {type(extra).__name__}")
    merged = deep_merge(overrides, extra)
    check_overrides(merged)
    return merged


def sanitize_run_id(airflow_run_id: str) -> str:
    """Airflow run ids (`manual__2026-01-01T00:00:00+00:00`) made safe as a path segment."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", airflow_run_id).strip("-.")[:128] or "run"


def rerun_from(params: dict[str, Any], dag: str) -> str:
    """The `--rerun-from` stages (comma-separated) for `force` / `rerun_from`; "" reruns nothing."""
    from core.registry import STAGES, dag_stages

    if params.get("force"):
        return ",".join(s.name for s in dag_stages(dag))
    start = params.get("rerun_from") or ""
    if start and start not in STAGES:
        raise ValueError(f"param rerun_from: unknown stage {start!r}; known: {', '.join(STAGES)}")
    return start


def prepare_run(params: dict[str, Any], airflow_run_id: str, dag: str = "curation") -> dict[str, str]:
    """Validate everything up front; what the Spark tasks receive as arguments."""
    overrides = params_to_overrides(params)
    cfg = load_config(None, overrides)  # the deployment's profile; raises ConfigError naming the field
    run_id = check_run_id(params.get("run_id") or sanitize_run_id(airflow_run_id))
    return {
        "run_id": run_id,
        "profile": cfg.profile,
        "overrides_json": json.dumps(overrides, sort_keys=True),
        "driver_memory": cfg.spark.driver_memory,
        "rerun_from": rerun_from(params, dag),
    }


def publish_shards(prepared: dict[str, str]) -> dict[str, Any]:
    """Publish the run's committed shards to the deployment's `publish.uri` (jobs/publish; in place
    without one) and describe them for the `token_shards` Asset event: `manifest` is the published
    manifest's URI, written last, so an event never names a half-published dataset. The destination
    comes from the config only: `prepared` holds overrides `prepare_run` checked, and core/overrides.py
    refuses `publish.uri`."""
    from jobs.publish import publish

    cfg = load_config(prepared["profile"], prepared["overrides_json"])
    result = publish(cfg, prepared["run_id"])
    manifest = require_manifest(open_storage(cfg.storage), prepared["run_id"], "shards")
    return {
        **prepared,
        "uri": result.dataset_uri,
        "manifest": result.manifest_uri,
        "in_place": result.in_place,
        "files": result.files,
        "bytes": result.bytes,
        "uploaded": result.uploaded,
        "fingerprint": manifest.fingerprint,
        "train_tokens": manifest.stats.get("train_tokens", 0),
    }


def upstream_from_events(events: Any) -> dict[str, str]:
    """run id, profile and overrides carried by the newest `token_shards` event."""
    for asset_events in (events or {}).values():
        for event in reversed(list(asset_events)):
            if event.extra and event.extra.get("run_id"):
                # Anyone allowed to post an asset event sets `extra`: checked like params.
                overrides_json = str(event.extra.get("overrides_json") or "{}")
                check_overrides(json.loads(overrides_json), source="asset event")
                run_id = check_run_id(str(event.extra["run_id"]))
                return {"run_id": run_id, "profile": "", "overrides_json": overrides_json}
    raise ValueError("no run_id: trigger with params {'run_id': ...} or via the token_shards asset")


def upstream_from_params(params: dict[str, Any], events: Any) -> dict[str, str]:
    if params.get("run_id"):
        return {"run_id": check_run_id(params["run_id"]), "profile": "", "overrides_json": "{}"}
    return upstream_from_events(events)


def merged_config_args(upstream: dict[str, str], params: dict[str, Any]) -> tuple[str | None, str]:
    """The upstream run's overrides with this DAG's params on top, under the deployment's profile."""
    base = json.loads(upstream.get("overrides_json") or "{}")
    check_overrides(base, source="upstream run")
    overrides = deep_merge(base, params_to_overrides(params))
    return None, json.dumps(overrides, sort_keys=True)
