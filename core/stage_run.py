"""The committed-stage protocol, once for every engine: resolve inputs, skip when current, commit.

Curation stages (Spark, jobs/spark/runner.py) and pretraining (Ray, training/stage.py) both call
`run_committed`. A stage is current when a manifest exists whose fingerprint (config sections,
input fingerprints, code version) equals the one computed now; `force` reruns it anyway. The work
writes into a fresh scratch folder that is committed only when the work returns (core/datasets.py).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import PipelineConfig
from core.datasets import Manifest, commit, fingerprint, read_manifest, require_manifest
from core.storage import LocalStorage, Storage, StorageError

log = logging.getLogger("lmforge.stage")
_SPARK_PART = re.compile(r"^(part-\d+)-[0-9a-f-]{36}(-c\d+)")


@dataclass(frozen=True)
class Plan:
    """What a stage would run on: its input manifests, the config it depends on, its fingerprint."""

    name: str
    run_id: str
    inputs: dict[str, Manifest]
    config: dict[str, Any]
    code: str
    fingerprint: str


def plan_stage(
    storage: Storage,
    run_id: str,
    name: str,
    cfg: PipelineConfig,
    *,
    inputs: tuple[str, ...],
    sections: tuple[str, ...],
    code: str,
    external: dict[str, Any] | None = None,
) -> Plan:
    """Requires every input to be committed; the fingerprint covers config, inputs and code."""
    manifests = {i: require_manifest(storage, run_id, i) for i in inputs}
    conf: dict[str, Any] = {k: getattr(cfg, k).model_dump(mode="json") for k in sections}
    if external is not None:
        conf["external"] = external
    fp = fingerprint(conf, {k: m.fingerprint for k, m in manifests.items()}, code)
    return Plan(name, run_id, manifests, conf, code, fp)


def current(storage: Storage, plan: Plan) -> Manifest | None:
    """The committed manifest when it matches the plan's fingerprint (the stage can be skipped).
    A malformed manifest of the stage itself is not current: the rerun's commit replaces it (the
    inputs' manifests, read by `plan_stage`, must be sound)."""
    try:
        existing = read_manifest(storage, plan.run_id, plan.name)
    except StorageError as err:
        log.warning("stage '%s' of run '%s' will be rerun: %s", plan.name, plan.run_id, err)
        return None
    return existing if existing is not None and existing.fingerprint == plan.fingerprint else None


def normalise_names(out: Path) -> None:
    """Spark part files carry a random UUID; strip it so reruns produce identical names."""
    for path in list(out.rglob("part-*")):
        path.rename(path.with_name(_SPARK_PART.sub(r"\1\2", path.name)))


def scratch_dir(storage: Storage, run_id: str, name: str) -> Path:
    """Beside the storage root when it is local (same filesystem, cheap commit), else in /tmp."""
    base = (
        Path(storage.root, ".scratch") if isinstance(storage, LocalStorage) else Path(tempfile.gettempdir())
    )
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{run_id}-{name}-", dir=base))


def run_committed(
    storage: Storage, plan: Plan, work: Callable[[Path], dict[str, Any]], *, force: bool = False
) -> tuple[Manifest, bool]:
    """(manifest, skipped). `work(out)` writes the stage's files into `out` and returns its stats."""
    existing = None if force else current(storage, plan)
    if existing is not None:
        log.info(
            "stage %s of run %s is current (same config, inputs and code): skipped", plan.name, plan.run_id
        )
        return existing, True
    out = scratch_dir(storage, plan.run_id, plan.name)
    log.info("stage %s of run %s started: %s", plan.name, plan.run_id, rows_in(plan))
    try:
        start = time.monotonic()
        stats = work(out)
        stats["seconds"] = round(time.monotonic() - start, 3)
        normalise_names(out)
        inputs = {k: m.fingerprint for k, m in plan.inputs.items()}
        manifest = commit(
            storage,
            plan.run_id,
            plan.name,
            out,
            config=plan.config,
            inputs=inputs,
            stats=stats,
            code=plan.code,
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    log.info("%s", counts_line(plan, manifest))
    return manifest, False


def rows_in(plan: Plan) -> str:
    """ "1,234 rows in (quality 1,000, code 234)": the committed inputs' kept (`data`) rows."""
    per_input = {name: m.rows.get("data", 0) for name, m in plan.inputs.items()}
    if not per_input:
        return "no input stages"
    detail = ", ".join(f"{name} {n:,}" for name, n in per_input.items())
    return f"{sum(per_input.values()):,} rows in ({detail})"


def counts_line(plan: Plan, manifest: Manifest) -> str:
    """The line a task log shows when a stage commits: rows in and out (by part: data, rejected,
    ...), per source and per reason where the stage counts them, and the registry's summary keys
    (core/registry.py, the numbers the run summary reports), so a watcher need not open the run."""
    from core.registry import STAGES

    stats = manifest.stats
    out = ", ".join(f"{part} {n:,}" for part, n in sorted(manifest.rows.items())) or "no rows"
    parts = [
        f"stage {plan.name} committed in {stats.get('seconds', 0):.1f} s: {rows_in(plan)}; out: {out}",
        f"{manifest.bytes:,} bytes",
    ]
    for key in ("documents_by_source", "rejected_by_reason"):
        if stats.get(key):
            parts.append(f"{key.replace('_', ' ')}: {_brief(stats[key])}")
    summary = STAGES[plan.name].summary if plan.name in STAGES else ()
    picked = {k: v for k, v in (_pick(stats, key) for key in summary) if k not in ("rejected_by_reason",)}
    if picked:
        parts.append(", ".join(f"{k}={_brief(v)}" for k, v in picked.items()))
    return "; ".join(parts)


def _pick(stats: dict[str, Any], key: str) -> tuple[str, Any]:
    """A registry summary key's (name, value): "a.b" is nested, "k:len" a list's length (as the
    run summary reads them, jobs/report.py)."""
    key, _, fn = key.partition(":")
    value: Any = stats
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return key.rsplit(".", 1)[-1], len(value or []) if fn == "len" else value


def _brief(value: Any, limit: int = 12) -> str:
    """Counts as `a 3, b 2` (largest first, at most `limit`), floats to 4 digits, the rest as is."""
    if isinstance(value, dict):
        items = sorted(
            value.items(), key=lambda kv: (-kv[1], kv[0]) if isinstance(kv[1], int) else (0, kv[0])
        )
        shown = ", ".join(f"{k} {_brief(v)}" for k, v in items[:limit])
        more = f", +{len(items) - limit} more" if len(items) > limit else ""
        return "{" + shown + more + "}"
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"
